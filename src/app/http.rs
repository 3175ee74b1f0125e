//! The one HTTP listener of a process: every process serves health, readiness, metrics and
//! the admin routes; ingress and the API add theirs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use super::tasks::Tasks;
use super::{AppError, Clients};
use crate::api::auth::Authenticator;
use crate::api::{admin, error, health};
use crate::http::HttpSettings;

/// `/healthz`, `/readyz`, `/metrics` and `/v1/admin/...`.
pub(super) fn ops_router(
    clients: &Clients,
    metrics: PrometheusHandle,
    authenticator: Arc<Authenticator>,
) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route(
            "/readyz",
            get(health::readyz).with_state(Arc::new(clients.readiness())),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .merge(admin::router(Arc::new(clients.admin()), authenticator))
}

/// Bind `http.addr` and serve `router` until shutdown; returns the bound address.
pub(super) async fn serve(
    settings: &HttpSettings,
    router: Router,
    tasks: &mut Tasks,
) -> Result<Option<SocketAddr>, AppError> {
    // Every answer of the listener in the API's error shape, timeouts included.
    let router = error::in_error_shape(router, settings.request_timeout);
    let listener = TcpListener::bind(settings.addr)
        .await
        .map_err(|source| AppError::Bind {
            addr: settings.addr,
            source,
        })?;
    let addr = listener.local_addr().ok();
    let http = settings.clone();
    let token = tasks.token();
    tasks.spawn("HTTP server", async move {
        Ok(crate::http::serve(listener, router, &http, token).await?)
    });
    tracing::info!(addr = ?addr, "HTTP listening");
    Ok(addr)
}
