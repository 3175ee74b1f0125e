//! The HTTP API besides the webhook: health, readiness, operator endpoints (JWT admin role),
//! the user API behind bearer JWTs (`/v1/phones`, `/v1/items`, `/v1/messages`), and its
//! OpenAPI document. Handlers only: the reads they serve live with their read models in
//! `projector`, and writes go through events.

pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod items;
pub mod jwks;
pub mod openapi;
pub mod params;
pub mod phones;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::response::Response;
use axum::Router;
use serde::{Deserialize, Serialize};
use tower_http::trace::TraceLayer;
use tracing::field;

pub use error::ApiError;

/// `[api]`: the user-facing API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// How bearer tokens are checked.
    pub auth: auth::AuthSettings,
}

impl ApiSettings {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<(), crate::validation::InvalidSetting> {
        use crate::validation::InvalidSetting;
        match &self.auth.jwks_url {
            Some(u) if !crate::validation::is_http_url(u) => Err(InvalidSetting::new(
                "api.auth.jwks_url",
                "must be an absolute http(s) URL of the issuer's JWKS document",
            )),
            // An issuer's keys sign tokens for every service it serves: without an audience,
            // a token minted for another service would open this one.
            Some(_) if self.auth.audience.as_deref().is_none_or(str::is_empty) => {
                Err(InvalidSetting::new(
                    "api.auth.audience",
                    "must be set with api.auth.jwks_url: the `aud` this API's tokens carry",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The user API: item and phone routes behind bearer authentication, and the OpenAPI
/// document, each request traced as one server span. A body over `body_limit` bytes is
/// refused with 413.
pub fn router(
    items: Arc<items::ItemsApi>,
    phones: Arc<phones::PhonesApi>,
    auth: Arc<auth::Authenticator>,
    body_limit: usize,
) -> Router {
    Router::new()
        .merge(items::router(items, auth.clone()))
        .merge(phones::router(phones, auth))
        .merge(openapi::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(|resp: &Response, _latency, span: &tracing::Span| {
                    span.record("http.response.status_code", resp.status().as_u16());
                })
                // Failures are logged once, by `ApiError`.
                .on_failure(()),
        )
}

/// The server span of one API request, following the HTTP semantic conventions. It names the
/// route template, never the path: a path can carry a phone number.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "api.request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = field::Empty,
    )
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let t = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_millis(u64::try_from(ms).ok()?))?;
    Some(humantime::format_rfc3339_millis(t).to_string())
}
