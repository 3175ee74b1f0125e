//! The two HTTP listeners of a process. The public one (`http.addr`) serves `/healthz` plus the
//! routes of ingress and the API, for Twilio and users; the operator one (`http.ops_addr`)
//! serves `/healthz`, `/readyz` with its error details, `/metrics` and `/v1/admin/...`, for
//! probes, scrapers and operators. Every process binds both, whatever its roles.

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

/// The public routes every process serves: `/healthz`; ingress and the API merge theirs.
pub(super) fn public_router() -> Router {
    Router::new().route("/healthz", get(health::healthz))
}

/// The operator listener's routes: `/healthz`, `/readyz`, `/metrics` and `/v1/admin/...`.
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

/// Where the two listeners are bound (port 0 in tests resolves here).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bound {
    pub public: SocketAddr,
    pub ops: SocketAddr,
}

/// Bind `http.addr` and `http.ops_addr`, then serve each router until shutdown. Both bind
/// before either serves, so a busy port fails the start and nothing half-listens. On shutdown
/// both drain, each within `http.shutdown_grace`.
pub(super) async fn serve(
    settings: &HttpSettings,
    public: Router,
    ops: Router,
    tasks: &mut Tasks,
) -> Result<Bound, AppError> {
    let public_listener = bind(settings.addr, "http.addr").await?;
    let ops_listener = bind(settings.ops_addr, "http.ops_addr").await?;
    let bound = Bound {
        public: local_addr(&public_listener, settings.addr),
        ops: local_addr(&ops_listener, settings.ops_addr),
    };
    for (name, listener, router) in [
        ("HTTP server (public)", public_listener, public),
        ("HTTP server (operator)", ops_listener, ops),
    ] {
        // Every answer of a listener in the API's error shape, timeouts and 404s included.
        let router = error::in_error_shape(router, settings.request_timeout);
        let http = settings.clone();
        let token = tasks.token();
        tasks.spawn(name, async move {
            Ok(crate::http::serve(listener, router, &http, token).await?)
        });
    }
    tracing::info!(addr = %bound.public, ops_addr = %bound.ops, "HTTP listening");
    Ok(bound)
}

async fn bind(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            setting,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}
