//! The OpenAPI 3.1 document of the HTTP API, built from the handlers' `#[utoipa::path]`
//! attributes and the `ToSchema` types, served unauthenticated at `GET /v1/openapi.json`.
//!
//! The integration test `tests/openapi.rs` checks real responses against the schemas,
//! `tests/api_contract.rs` runs openapi-spec-validator, schemathesis and a generated client
//! against a running instance, and the unit tests here check that every route the router code
//! mounts is in the document, with unique operation ids, links and the shared error answers.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::{ErrorBody, ErrorDetail};
use super::items::views::{
    Decision, Item, ItemPage, ItemStatus, ItemSummary, MessagePart, MessageProgress,
    ReviewAccepted, ReviewRequest,
};
use super::params::{PageToken, TimeZone, VerificationCode, E164};
use super::{admin, health, items, phones};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "smsflow API",
        description = "The user API over the enrichment read models (bearer JWT, `sub` is the \
            user; someone else's item or message is a 404) and the phone registry, on the \
            public listener (`http.addr`); and the operator routes, on the operator listener \
            (`http.ops_addr`, each such path names it in `servers`): readiness, metrics and \
            the admin statistics (a JWT whose role claim carries the admin role). `/healthz` \
            is on both. Every error is `{\"error\": {\"code\", \"message\"}}` with a \
            stable code."
    ),
    paths(
        items::list,
        items::one,
        items::review,
        items::message,
        phones::list,
        phones::link,
        phones::verify,
        phones::unlink,
        admin::all,
        admin::cache,
        admin::database,
        admin::connections,
        admin::reset,
        health::healthz,
        health::readyz,
        metrics,
        openapi_json,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        E164,
        TimeZone,
        VerificationCode,
        PageToken,
        ItemPage,
        ItemSummary,
        Item,
        ItemStatus,
        MessageProgress,
        MessagePart,
        ReviewRequest,
        Decision,
        ReviewAccepted,
    )),
    modifiers(&BearerScheme, &CommonErrors),
    tags(
        (name = "items", description = "Enrichment items and their review"),
        (name = "phones", description = "The caller's phone numbers"),
        (name = "admin", description = "Operator statistics of the serving process (admin role)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The name of the security scheme every authenticated route refers to.
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 (`api.auth.hs256_secret`) or a key of `api.auth.jwks_url`. `sub` \
                         is the user id; `roles` (array) or `role` (string) carrying \
                         `api.auth.admin_role` (default `admin`) opens the admin routes.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers the framework and the shared layers give, added to each operation they apply
/// to (an operation's own description of the same status wins): every operation can time out;
/// a protected one refuses a missing or bad token, an admin one a token without the role; one
/// with parameters or a body refuses malformed ones; one with a body refuses a wrong content
/// type and a body over `http.body_limit_bytes`. All in the error shape.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common_errors(path, op);
            }
        }
    }
}

fn add_common_errors(path: &str, op: &mut Operation) {
    let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    add(
        "408",
        "`request_timeout`: not answered within `http.request_timeout`; retry",
    );
    add(
        "503",
        "`busy`: too many requests in flight (`http.max_concurrent_requests`); retry after \
         `Retry-After`",
    );
    if protected {
        add("401", "`unauthorized`: no bearer token, or not a valid one");
    }
    if path.starts_with("/v1/admin/") {
        add("403", "`forbidden`: a valid token without the admin role");
    }
    if has_params || has_body {
        add("400", "`invalid_request`: a malformed request");
    }
    if has_body {
        add(
            "413",
            "`payload_too_large`: the body is over `http.body_limit_bytes`",
        );
        add(
            "415",
            "`unsupported_media_type`: the body is not `application/json`",
        );
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build()
        .into()
}

/// Whether `path` is served by the operator listener (`http.ops_addr`) only: readiness,
/// metrics and the admin routes. The public listener answers them 404.
pub fn on_ops_listener(path: &str) -> bool {
    matches!(path, "/readyz" | "/metrics") || path.starts_with("/v1/admin/")
}

/// Paths both listeners serve.
const ON_BOTH_LISTENERS: &[&str] = &["/healthz"];

/// The public listener, where the document is served: its `servers` entry is relative.
fn public_server() -> Value {
    serde_json::json!({
        "url": "/",
        "description": "The public listener, `http.addr` (reached as `http.public_url`): \
            Twilio's webhooks, the user API, `/healthz` and this document",
    })
}

/// The operator listener, with its default address as the variables' defaults.
fn ops_server() -> Value {
    let default = crate::http::HttpSettings::default().ops_addr;
    serde_json::json!({
        "url": "http://{host}:{port}",
        "description": "The operator listener, `http.ops_addr`: `/healthz`, `/readyz`, \
            `/metrics` and `/v1/admin/...`, for probes, scrapers and operators. The public \
            listener answers these paths 404.",
        "variables": {
            "host": {"default": default.ip().to_string(), "description": "the host of `http.ops_addr`"},
            "port": {"default": default.port().to_string(), "description": "the port of `http.ops_addr`"},
        },
    })
}

/// Each path's listeners as OpenAPI `servers`: the document's own for the public listener,
/// a path-level list for the operator routes and for the paths on both.
fn add_servers(doc: &mut Value) {
    doc["servers"] = Value::Array(vec![public_server()]);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if on_ops_listener(path) {
            item["servers"] = Value::Array(vec![ops_server()]);
        } else if ON_BOTH_LISTENERS.contains(&path.as_str()) {
            item["servers"] = Value::Array(vec![public_server(), ops_server()]);
        }
    }
}

/// The document as served.
///
/// utoipa 5.5 writes a Link object's fields in snake_case (`operation_id`, `operation_ref`,
/// `request_body`), which the specification spells `operationId`, `operationRef` and
/// `requestBody`; openapi-spec-validator refuses the former, and tools that follow links
/// (schemathesis's stateful phase, code generators) would not see them. They are renamed here.
pub fn document() -> Value {
    // Rendering cannot fail for this document (string keys only); `null` would show it.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in operations {
        let responses = op["responses"].as_object_mut().into_iter().flatten();
        for (_, response) in responses {
            let links = response
                .get_mut("links")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|links| links.values_mut())
                .filter_map(Value::as_object_mut);
            for link in links {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(from) {
                        link.insert(to.to_owned(), v);
                    }
                }
            }
        }
    }
    add_servers(&mut doc);
    doc
}

/// `GET /v1/openapi.json`, rendered once.
pub fn router() -> Router {
    let json = Bytes::from(document().to_string());
    Router::new().route(
        "/v1/openapi.json",
        get(move || std::future::ready(openapi_json(json.clone()))),
    )
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", operation_id = "getOpenApiDocument",
    summary = "This document (no token needed)",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
fn openapi_json(json: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "getMetrics",
    summary = "Prometheus metrics of this process",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
#[allow(dead_code)] // Describes the closure `app/http.rs` mounts.
fn metrics() {}

#[cfg(test)]
mod tests;
