//! The request extractors of the API: axum's `Json`, `Query` and `Path`, whose rejections
//! (malformed JSON, a wrong content type, a body over the limit, a bad query or path) answer in
//! the API's error shape instead of axum's `text/plain`. Handlers take these, never axum's.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

/// A JSON request body (`Content-Type: application/json`), or a JSON response.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts (http.body_limit_bytes)",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON: send `Content-Type: application/json`",
            ),
            // Malformed JSON (axum: 400) and JSON of the wrong shape (axum: 422) alike: the
            // request is wrong, and the message says where.
            _ => ApiError::invalid(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        // A path that does not decode (invalid UTF-8 in a parameter) is the client's; a route
        // whose parameters do not fit its extractor is ours.
        if r.status().is_server_error() {
            ApiError::internal(r.body_text())
        } else {
            ApiError::invalid(r.body_text())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{header, Request};
    use axum::routing::post;
    use axum::Router;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body1 {
        #[allow(dead_code)]
        n: u8,
    }

    #[derive(Deserialize)]
    struct Q {
        #[allow(dead_code)]
        wait: Option<bool>,
    }

    async fn handler(Path(_id): Path<u32>, Query(_q): Query<Q>, Json(_b): Json<Body1>) {}

    fn app() -> Router {
        Router::new()
            .route("/x/{id}", post(handler))
            .layer(DefaultBodyLimit::max(64))
    }

    async fn send(uri: &str, content_type: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = Request::post(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = app()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json",
            "{uri} {body}"
        );
        let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_framework_rejection_is_in_the_error_shape() {
        let json = Some("application/json");
        let cases = [
            ("/x/1", json, "{", 400, "invalid_request"),
            (
                "/x/1",
                json,
                r#"{"n": 1, "extra": 2}"#,
                400,
                "invalid_request",
            ),
            ("/x/1", json, r#"{"n": "one"}"#, 400, "invalid_request"),
            ("/x/1", None, r#"{"n": 1}"#, 415, "unsupported_media_type"),
            (
                "/x/1",
                Some("text/plain"),
                r#"{"n": 1}"#,
                415,
                "unsupported_media_type",
            ),
            (
                "/x/1",
                json,
                &format!(r#"{{"n": 1, "p": "{}"}}"#, "x".repeat(100)),
                413,
                "payload_too_large",
            ),
            (
                "/x/1?wait=null",
                json,
                r#"{"n": 1}"#,
                400,
                "invalid_request",
            ),
            ("/x/one", json, r#"{"n": 1}"#, 400, "invalid_request"),
        ];
        for (uri, ct, body, status, code) in cases {
            let (s, v) = send(uri, ct, body).await;
            assert_eq!(s.as_u16(), status, "{uri} {ct:?} {body}: {v}");
            assert_eq!(v["error"]["code"], code, "{uri} {body}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{v}"
            );
        }
        // And a good request passes.
        let resp = app()
            .oneshot(
                Request::post("/x/1?wait=true")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"n": 1}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
