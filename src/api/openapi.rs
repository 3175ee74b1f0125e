//! The OpenAPI 3.1 document of the HTTP API, built from the handlers' `#[utoipa::path]`
//! attributes and the `ToSchema` types, served unauthenticated at `GET /v1/openapi.json`.
//!
//! The integration test `tests/openapi.rs` checks real responses against the schemas, and
//! the unit test here checks that every route the router code mounts is in the document.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::items::views::{
    Decision, Item, ItemPage, ItemStatus, ItemSummary, MessagePart, MessageProgress,
    ReviewAccepted, ReviewRequest,
};
use super::{admin, health, items, phones};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "smsflow API",
        description = "The user API over the enrichment read models (bearer JWT, `sub` is the \
            user; someone else's item or message is a 404), the phone registry, and the \
            operator routes (a JWT whose role claim carries the admin role). Every error is \
            `{\"error\": {\"code\", \"message\"}}` with a stable code."
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
    modifiers(&BearerScheme),
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

/// `GET /v1/openapi.json`, rendered once.
pub fn router() -> Router {
    // Rendering cannot fail for this document (string keys only); an empty body would show it.
    let json = Bytes::from(ApiDoc::openapi().to_json().unwrap_or_default());
    Router::new().route(
        "/v1/openapi.json",
        get(move || std::future::ready(openapi_json(json.clone()))),
    )
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    summary = "This document (no token needed)",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
fn openapi_json(json: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics of this process",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
#[allow(dead_code)] // Describes the closure `app/http.rs` mounts.
fn metrics() {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::Value;

    use super::*;

    /// Routes the router code mounts that this document leaves out on purpose: Twilio's
    /// webhooks are a contract with Twilio (form posts signed by it), not part of this API.
    const UNDOCUMENTED: &[&str] = &["/webhooks/twilio/messages", "/webhooks/twilio/status"];

    fn doc() -> Value {
        serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap()
    }

    /// `(METHOD, path)` of every `.route(...)` call in the crate's non-test code.
    fn mounted_routes() -> BTreeSet<(String, String)> {
        let test_module =
            regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+ \{").unwrap();
        let method =
            regex::Regex::new(r"(?:^|[^A-Za-z0-9_])(get|post|put|delete|patch)\s*\(").unwrap();
        let mut files = Vec::new();
        collect_rs(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut routes = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = match test_module.find(&text) {
                Some(m) => &text[..m.start()],
                None => &text[..],
            };
            for (at, _) in code.match_indices(".route(") {
                let args = balanced(&code[at + ".route".len()..]);
                let path = args.split('"').nth(1).unwrap_or_else(|| {
                    panic!("{}: a .route( without a literal path", file.display())
                });
                let methods: Vec<_> = method
                    .captures_iter(args)
                    .map(|c| c[1].to_uppercase())
                    .collect();
                assert!(
                    !methods.is_empty(),
                    "{}: no method for {path}",
                    file.display()
                );
                for m in methods {
                    routes.insert((m, path.to_string()));
                }
            }
        }
        routes
    }

    fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect_rs(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The text from an opening parenthesis to its match.
    fn balanced(s: &str) -> &str {
        let mut depth = 0;
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &s[..=i];
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced route call: {s:.80}")
    }

    fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_and_lists_exactly_the_mounted_routes() {
        let doc = doc();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        let mounted: BTreeSet<_> = mounted_routes()
            .into_iter()
            .filter(|(_, p)| !UNDOCUMENTED.contains(&p.as_str()))
            .collect();
        // The scan must see the routes of every router module, or it proves nothing.
        for expected in [
            ("GET", "/v1/items"),
            ("POST", "/v1/items/{id}/review"),
            ("DELETE", "/v1/phones/{phone}"),
            ("POST", "/v1/admin/stats/reset"),
            ("GET", "/metrics"),
            ("GET", "/v1/openapi.json"),
        ] {
            assert!(
                mounted.contains(&(expected.0.to_string(), expected.1.to_string())),
                "the route scan missed {expected:?}: {mounted:?}"
            );
        }
        let documented = documented_routes(&doc);
        let undocumented: Vec<_> = mounted.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&mounted).collect();
        assert!(
            undocumented.is_empty(),
            "mounted but not documented: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not mounted: {unrouted:?}"
        );
    }

    #[test]
    fn protected_routes_name_the_bearer_scheme_and_their_errors() {
        let doc = doc();
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
        let error_ref = "#/components/schemas/ErrorBody";
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, r) in responses {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if error && path.starts_with("/v1/") {
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"], error_ref,
                            "{method} {path} {status}"
                        );
                    }
                }
                if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
                    assert!(op.get("security").is_none(), "{method} {path} is public");
                    continue;
                }
                checked += 1;
                assert_eq!(
                    op["security"][0][BEARER],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                assert!(responses.contains_key("401"), "{method} {path} has no 401");
                if path.starts_with("/v1/admin/") {
                    assert!(responses.contains_key("403"), "{method} {path} has no 403");
                }
            }
        }
        assert!(checked >= 13, "only {checked} protected operations");
    }

    #[test]
    #[ignore = "prints the document"]
    fn print() {
        println!("{}", ApiDoc::openapi().to_pretty_json().unwrap());
    }

    #[test]
    fn the_review_request_takes_approve_or_reject() {
        let doc = doc();
        let op = &doc["paths"]["/v1/items/{id}/review"]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ReviewRequest"
        );
        let schemas = &doc["components"]["schemas"];
        let request = &schemas["ReviewRequest"];
        assert_eq!(request["required"], serde_json::json!(["decision"]));
        assert_eq!(
            request["properties"]["decision"]["$ref"],
            "#/components/schemas/Decision"
        );
        assert_eq!(
            schemas["Decision"]["enum"],
            serde_json::json!(["approve", "reject"])
        );
        // The serde names are the ones the handler accepts.
        assert_eq!(serde_json::to_value(Decision::Approve).unwrap(), "approve");
        let params: Vec<_> = doc["paths"]["/v1/items"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
            .collect();
        assert_eq!(
            params,
            [
                ("status", "query"),
                ("limit", "query"),
                ("page_token", "query")
            ]
        );
    }
}
