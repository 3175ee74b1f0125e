//! Operator endpoints under `/v1/admin`, behind a bearer token (`admin.token`) until the query
//! API brings JWT roles.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::Dependencies;
use crate::stats::stats;

/// What the admin endpoints read.
pub struct AdminState {
    pub token: Option<String>,
    pub deps: Arc<Dependencies>,
}

/// `/v1/admin/stats...` routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/v1/admin/stats", get(all))
        .route("/v1/admin/stats/cache", get(cache))
        .route("/v1/admin/stats/database", get(database))
        .route("/v1/admin/stats/connections", get(connections))
        .route("/v1/admin/stats/reset", post(reset))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

async fn require_admin(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let Some(expected) = state.token.as_deref().filter(|t| !t.is_empty()) else {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: set admin.token (SMSFLOW_ADMIN__TOKEN)\n",
        )
            .into_response();
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid admin bearer token is required\n",
        )
            .into_response()
    }
}

async fn all(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(json!({
        "counters": stats().snapshot(),
        "cache": cache_json(),
        "database": database_json(&state),
        "connections": connections_json(&state),
    }))
}

async fn cache() -> Json<Value> {
    Json(cache_json())
}

async fn database(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(database_json(&state))
}

async fn connections(State(state): State<Arc<AdminState>>) -> Json<Value> {
    Json(connections_json(&state))
}

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
    let Some(cql) = state.deps.cql_if_connected() else {
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
    let cql = state.deps.cql_if_connected().map(|s| {
        let m = s.get_metrics();
        json!({"connections": m.get_total_connections(), "connection_timeouts": m.get_connection_timeouts()})
    });
    let redis = state.deps.redis.status();
    json!({
        "cql": cql,
        "redis": {"size": redis.size, "available": redis.available, "waiting": redis.waiting, "max_size": redis.max_size},
        "http": {"open_connections": crate::http::open_connections()},
    })
}
