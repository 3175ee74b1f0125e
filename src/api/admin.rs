//! Operator endpoints under `/v1/admin`: statistics of this process. They need a bearer
//! JWT whose role claim carries `api.auth.admin_role` (the same verifier as the user API).

use std::sync::Arc;

use axum::extract::State;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::{self, Authenticator};
use crate::stats::stats;
use crate::store::SharedSession;

/// What the admin endpoints read: handles on the process's shared clients.
pub struct AdminState {
    pub cql: SharedSession,
    pub redis: deadpool_redis::Pool,
}

/// `/v1/admin/stats...` routes, behind the admin role.
pub fn router(state: Arc<AdminState>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/v1/admin/stats", get(all))
        .route("/v1/admin/stats/cache", get(cache))
        .route("/v1/admin/stats/database", get(database))
        .route("/v1/admin/stats/connections", get(connections))
        .route("/v1/admin/stats/reset", post(reset))
        .route_layer(middleware::from_fn_with_state(auth, auth::require_admin))
        .with_state(state)
}

#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", operation_id = "getStats",
    summary = "All statistics of this process",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`counters`, `cache`, `database` and `connections` together", body = Object),
    ))]
async fn all(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(json!({
        "counters": stats().snapshot(),
        "cache": cache_json(),
        "database": database_json(&state),
        "connections": connections_json(&state),
    }))
}

#[utoipa::path(get, path = "/v1/admin/stats/cache", tag = "admin", operation_id = "getCacheStats",
    summary = "Cache statistics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`caches.phones`: hits, misses, hit ratio, entries", body = Object),
    ))]
async fn cache() -> Json<Value> {
    Json(cache_json())
}

#[utoipa::path(get, path = "/v1/admin/stats/database", tag = "admin", operation_id = "getDatabaseStats",
    summary = "CQL driver statistics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`cql`: requests, errors, retries, latency; null before the first CQL use", body = Object),
    ))]
async fn database(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(database_json(&state))
}

#[utoipa::path(get, path = "/v1/admin/stats/connections", tag = "admin", operation_id = "getConnectionStats",
    summary = "Connection pools",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`cql`, `redis` and `http` pool sizes", body = Object),
    ))]
async fn connections(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(connections_json(&state))
}

#[utoipa::path(post, path = "/v1/admin/stats/reset", tag = "admin", operation_id = "resetStats",
    summary = "Zero the resettable counters",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was reset (Prometheus counters stay monotonic)", body = Object),
    ))]
async fn reset() -> Json<Value> {
    stats().reset();
    Json(json!({"reset": ["counters", "webhook_latency", "end_to_end_latency"]}))
}

fn cache_json() -> Value {
    let s = stats().snapshot();
    json!({"caches": {"phones": {
        "hits": s.phone_cache_hits,
        "misses": s.phone_cache_misses,
        "hit_ratio": s.phone_cache_hit_ratio,
        "entries": crate::metrics::phone_cache_entry_count(),
    }}})
}

fn database_json(state: &AdminState) -> Value {
    let Some(cql) = state.cql.if_connected() else {
        return json!({"cql": null});
    };
    let m = cql.get_metrics();
    json!({
        "cql": {
            "requests": m.get_requests_unpaged_num() + m.get_requests_manually_paged_num() + m.get_requests_automatically_paged_num(),
            "errors": m.get_errors_unpaged_num() + m.get_errors_manually_paged_num() + m.get_errors_automatically_paged_num(),
            "retries": m.get_retries_num(),
            "latency_avg_ms": m.get_latency_avg_ms().ok(),
            "latency_p99_ms": m.get_latency_percentile_ms(99.0).ok(),
            "requests_per_second_1m": m.get_one_minute_rate(),
        }
    })
}

fn connections_json(state: &AdminState) -> Value {
    let cql = state.cql.if_connected().map(|s| {
        let m = s.get_metrics();
        json!({"connections": m.get_total_connections(), "connection_timeouts": m.get_connection_timeouts()})
    });
    let redis = state.redis.status();
    json!({
        "cql": cql,
        "redis": {"size": redis.size, "available": redis.available, "waiting": redis.waiting, "max_size": redis.max_size},
        "http": {"open_connections": crate::http::open_connections()},
    })
}
